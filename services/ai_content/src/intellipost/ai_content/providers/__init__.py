"""Content providers: the embedded rule-based generator and the LLM APIs behind one contract."""
