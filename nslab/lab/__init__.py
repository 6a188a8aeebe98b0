"""Labs: topologies of hosts, routers and switches, each node a namespace (DESIGN.md §1, §4).

The planning half is pure (no root, no kernel): `topology` reads and checks a spec, `builtin` makes the
`--topo` shapes, `addressing` and `routing` compute subnets, addresses and routes, `plan` ties them into
one immutable `Plan` that the apply step executes.
"""
