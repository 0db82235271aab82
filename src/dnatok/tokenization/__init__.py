"""Tokenizers for DNA: character, k-mer (overlapping / non-overlapping) and BPE.

Public interface::

    train_tokenizer(spec, out_dir, corpus=None) -> DnaTokenizer
    load_tokenizer(path) -> DnaTokenizer
    reverse_complement(seq) -> str
"""
from dnatok.tokenization.core import DnaTokenizer, load_tokenizer, reverse_complement, train_tokenizer
from dnatok.tokenization.vocab import canonical_spec, default_name

__all__ = ["DnaTokenizer", "load_tokenizer", "reverse_complement", "train_tokenizer",
           "canonical_spec", "default_name"]
