"""The Genomic Benchmarks baseline CNN (Grešová et al. 2023), as used by the study as a
non-pretrained reference: token embedding (100) -> three blocks of
Conv1d(kernel 8) + BatchNorm + ReLU + MaxPool(2) with 16, 8, 4 channels -> flatten ->
dense 512 + ReLU -> linear to the classes.

The flatten makes the dense layer's input size depend on the sequence length, so the
model is built for a fixed ``max_len`` (tokens): shorter inputs are right-padded with the
pad token up to it (as the original pads every sequence to the dataset's length); longer
inputs are an error (tokenize with truncation to max_len).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel

from .heads import ClassifierMixin, DnaConfig, init_fill, init_normal, init_uniform, token_embedding


class CnnConfig(DnaConfig):
    model_type = "dnatok_cnn"

    def __init__(self, max_len: int = 512, embed_dim: int = 100, channels: list[int] | tuple = (16, 8, 4),
                 kernel_size: int = 8, pool_size: int = 2, dense_dim: int = 512, **kwargs):
        self.max_len = max_len
        self.embed_dim = embed_dim
        self.channels = list(channels)
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.dense_dim = dense_dim
        super().__init__(**kwargs)
        if self.flat_length() < 1:
            raise ValueError(f"max_len {max_len} is too short for {len(self.channels)} conv blocks "
                             f"of kernel {kernel_size} and pooling {pool_size}")

    def flat_length(self) -> int:
        """Sequence length left after the conv/pool blocks (for the dense layer's size)."""
        length = self.max_len
        for _ in self.channels:
            length = (length - self.kernel_size + 1) // self.pool_size
        return length

    @property
    def hidden_size(self) -> int:
        return self.dense_dim


class CnnForSequenceClassification(ClassifierMixin, PreTrainedModel):
    config_class = CnnConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def __init__(self, config: CnnConfig):
        super().__init__(config)
        self.embedding = token_embedding(config, config.vocab_size, config.embed_dim)
        blocks = []
        c_in = config.embed_dim
        for c_out in config.channels:
            blocks += [nn.Conv1d(c_in, c_out, config.kernel_size), nn.BatchNorm1d(c_out), nn.ReLU(),
                       nn.MaxPool1d(config.pool_size)]
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.dense = nn.Linear(c_in * config.flat_length(), config.dense_dim)
        self.classifier = nn.Linear(config.dense_dim, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.embedding

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            fan_in = module.weight[0].numel()
            init_uniform(module.weight, 1.0 / math.sqrt(fan_in))  # PyTorch's default
            init_uniform(module.bias, 1.0 / math.sqrt(fan_in))
        elif isinstance(module, nn.Embedding):
            init_normal(module.weight, 1.0)  # PyTorch's default N(0, 1)
        elif isinstance(module, nn.BatchNorm1d):
            init_fill(module.weight, 1.0)
            init_fill(module.bias, 0.0)
            init_fill(module.running_mean, 0.0)
            init_fill(module.running_var, 1.0)
            init_fill(module.num_batches_tracked, 0)

    def sequence_logits(self, input_ids, attention_mask):
        # attention_mask is not used: like the original, the CNN sees pad tokens as input
        length = input_ids.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"input has {length} tokens, the CNN was built for max_len {self.config.max_len}")
        if length < self.config.max_len:
            input_ids = F.pad(input_ids, (0, self.config.max_len - length), value=self.config.pad_token_id)
        x = self.convs(self.embedding(input_ids).transpose(1, 2))
        return self.classifier(F.relu(self.dense(x.flatten(1))))
