"""Training: state, optimisers, pure steps, parallel wrappers, checkpoints and the loop."""
