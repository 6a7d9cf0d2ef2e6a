"""What the ``mlip-eqx`` commands run, as library functions of settings configs:
:func:`~mlip_eqx.workflows.train.train`,
:func:`~mlip_eqx.workflows.preprocess.run_preprocess`,
:func:`~mlip_eqx.workflows.evaluate.evaluate` and
:func:`~mlip_eqx.workflows.simulate.simulate`.

This layer sits above training, inference and simulation, below the CLI; it raises
exceptions (the CLI turns the user's errors into messages and exit codes).
"""
