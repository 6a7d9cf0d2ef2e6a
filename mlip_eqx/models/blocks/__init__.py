"""Building blocks shared by the networks: radial basis and MLP, spherical harmonics,
equivariant linear maps, message passing and readouts."""
