"""Data generators: the synthetic world with its oracle demos (synth/), real-world sets (real/), and
the BPE trainer for from-scratch policies (bpe). They sit above agent/ and tools/ (the oracle walks
real searches and writes the agent's tags); data/ (schema, I/O, the stream) imports none of them."""
