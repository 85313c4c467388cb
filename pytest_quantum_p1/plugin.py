"""pytest hooks and fixture declarations of ``-p quantum_p1`` (logic lives elsewhere)."""
