"""dnatok: tokenization study pipeline for genomic language models."""
__version__ = "0.1.0"
