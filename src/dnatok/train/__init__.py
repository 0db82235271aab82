"""Training stage: pre-training on genome windows, fine-tuning on benchmark tasks, the
two fine-tuning protocols (``original`` replays the study, ``corrected`` fixes it) and
whole-set classification metrics. torch is imported only when a run starts."""
from dnatok.train.finetune import finetune
from dnatok.train.metrics import classification_metrics
from dnatok.train.pretrain import pretrain
from dnatok.train.protocol import CORRECTED, ORIGINAL, PROTOCOLS, Protocol, get_protocol

__all__ = ["finetune", "pretrain", "classification_metrics", "Protocol", "get_protocol", "ORIGINAL",
           "CORRECTED", "PROTOCOLS"]
