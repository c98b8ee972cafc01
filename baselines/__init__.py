"""GAN baselines of the benchmark (CoCosNet first), with the same model contract as MIDMs."""
