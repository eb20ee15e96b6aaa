"""Images and their attachments in registries, OCI layouts and docker archives.

The public surface is :mod:`chaingate.oci.interface` (the store ABC, results
and errors), :mod:`chaingate.oci.reference`, :func:`chaingate.oci.stores.open_image`
and :func:`chaingate.oci.copy.copy_image`.
"""
