"""seed_demo and demo_receiver: thin wrappers over demo.seed and demo.receiver."""
