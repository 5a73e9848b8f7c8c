"""llama.cpp engines, each owned by one worker thread."""
