"""The BEND layer: BEND-format tasks built offline from real annotation, and zero-shot variant sets.

* :mod:`dnatok.bend.format` — BEND task files (header BED + HDF5 ``labels`` + ``task.json``):
  :class:`BendRecord`, :class:`BendTask`, :func:`write_task`, :func:`read_task` (checked, errors
  name file and line/row); also reads BEND's released BED/HDF5 files.
* :mod:`dnatok.bend.annotation` — transcripts from the SpliceAI exon-model table or a GENCODE
  GTF (one canonical transcript per gene), chromosome-name normalisation, CDS inference by the
  longest ATG ORF.
* :mod:`dnatok.bend.labels` — BEND's 9-class per-base gene-finding labels
  (``labels_simple_direction_DA``).
* :mod:`dnatok.bend.gene_finding` — the offline ``gene_finding`` task: gene windows (tiled when
  long), gene-level splits with both strands in each, written in BEND format.
* :mod:`dnatok.bend.variants` — zero-shot SNV sets: annotated splice-dinucleotide breakers
  (label 1) vs deep-intronic changes (label 0), as a BED-like TSV.
* :mod:`dnatok.bend.cli` — ``dnatok bend task gene-finding | variants | check``.
"""
