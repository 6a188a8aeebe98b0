"""Labs: topologies of hosts, routers and switches, each node a namespace.

The planning half is pure (no root, no kernel): `model` holds a topology as data, `checks` its rules,
`spec` the checked builder `Topology`, `loader` the YAML reader (`topology` re-exports all four), `builtin`
makes the `--topo` shapes, `addressing` and `routing` compute subnets, addresses and routes, `plan` ties them
into one immutable `Plan` (declared impairments included) that `apply` and `reconcile` execute; `view` is
the `LabView` features take; `lab` is the `Lab` facade.
"""
