"""Small building blocks shared by the operators, sensors and hook (not hooks themselves)."""
