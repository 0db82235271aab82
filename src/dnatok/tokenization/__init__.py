"""Tokenizers for DNA: character, k-mer (overlapping / non-overlapping), BPE and the
learned VQDNA tokenizers vq / hrq (one token per base; ``tokenization.learned``).

Public interface::

    train_tokenizer(spec, out_dir, corpus=None) -> DnaTokenizer | LearnedTokenizer
    load_tokenizer(path) -> DnaTokenizer | LearnedTokenizer (same encoding interface)
    reverse_complement(seq) -> str

``LearnedTokenizer`` (torch) is imported only when a vq/hrq tokenizer is trained or loaded.
"""
from dnatok.tokenization.core import DnaTokenizer, load_tokenizer, reverse_complement, train_tokenizer
from dnatok.tokenization.vocab import canonical_spec, default_name

__all__ = ["DnaTokenizer", "load_tokenizer", "reverse_complement", "train_tokenizer",
           "canonical_spec", "default_name"]
