"""The proof that the twins agree: one architecture, identical weights, tolerances, parity checks
layer by layer, finite differences, and lockstep training."""
