"""Phase 3: internal RL (the internal environment, the policy over codes, the RL loss, training)."""
