"""Data: FASTA and GO parsing, dataset readers, the HDF5 schema, batching."""
