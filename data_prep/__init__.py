"""Data preparation for bert_pl: converters from public dataset formats into
the project's input files (docs/DESIGN.md section 2), a vocabulary builder,
and a deterministic sample-corpus generator.

Each tool is a bert_pl job like the others: a frozen config dataclass,
`run(config)` (importable, returns its counts), and absl flags read only in
`main`; run it as `python -m data_prep.<tool>` or the console script
`data_prep_<tool>`.
"""
