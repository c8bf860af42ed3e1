"""The scoring core: the contract, text and model inputs, the verified artifact, the scorer, the
decision (route and phrasing), results, metrics and the consistency gate. No HTTP and no torch:
training, evaluation, the server and the bulk engines all import it."""
