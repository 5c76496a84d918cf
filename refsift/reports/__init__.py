"""What a command found, computed apart from how it is shown: the data of report.json
(`novelty`), which `refsift.pages` renders."""
