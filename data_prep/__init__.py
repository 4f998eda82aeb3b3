"""Data preparation for bert_pl: converters from public dataset formats into the project's input files
(DESIGN.md section 2), a vocabulary builder, and a deterministic sample-corpus generator.

Every module here is both importable (its functions take arguments) and runnable as a script
(`python data_prep/<module>.py --flags`); only each module's `main()` parses the command line.
"""
