"""Self-contained HTML/Markdown reports: `analysis` (text statistics), `html` (the page
shell, escaping, token shading, inline SVG charts), and one module per report."""
