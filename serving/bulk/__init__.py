"""The bulk engines: a CSV or JSONL file scored in one process, or on a Ray cluster."""
