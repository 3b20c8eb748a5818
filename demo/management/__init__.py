"""Management commands of the demo app: seed_demo and demo_receiver."""
