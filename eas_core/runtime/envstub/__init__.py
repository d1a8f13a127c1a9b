"""What a package's own ``ENV`` interpreter imports as ``allspark`` when OpenEAS is not in it.

Everything under this directory is standard library only and runs on Python 3.8 or newer:
the runtime puts this directory on the ENV interpreter's ``PYTHONPATH``.
"""
