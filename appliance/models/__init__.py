"""Model files: locate or prepare the GGUFs, convert BERT to GGUF, size them for the RAM."""
