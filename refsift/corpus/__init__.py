"""Reading corpora: cutting inputs into tasks (`tasks`), reading a task's raw records
(`formats`), and turning each record into a document or a rejection (`records`)."""
