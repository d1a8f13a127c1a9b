"""Load benchmarks of OpenEAS against its peers, with recorded results (see bench/README.md).

Imports nothing of the project here: the peer servers under ``bench.peers`` run in their own
virtualenvs, where only this package and ``bench.peers.scoring`` are needed.
"""
