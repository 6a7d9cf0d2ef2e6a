"""The code that drives the peers, mlip 0.2.5 and mace-torch, in their own
interpreters (see README.md, "Setting up the peers"), and the settings they share
with mlip_eqx's runs.

A module here is imported by the peer's interpreter, which has no mlip_eqx: none
imports mlip_eqx (or mlip, or torch) at module level.
"""
