"""Aggregation and statistics: runs table (collect), hyperparameter selection (select),
summaries over seeds (aggregate), the study's paired tests (paired), figures, tables and
the report. See ``dnatok stats --help``."""
