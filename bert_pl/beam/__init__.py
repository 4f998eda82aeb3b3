"""Apache Beam versions of the jobs a single machine cannot do at the paper's
scale (500 million texts): `create_pretraining_data` (steps 1 and 4) and
`predict_pseudo_labels` (step 3). They reuse the single-process jobs' library
code (no second implementation of masking or prediction) and write the same
files. Needs the `beam` extra: `pip install -e ".[beam]"`.
"""
