"""in-toto Statement v1 and SLSA Provenance v1, as plain JSON documents.

:mod:`.statement` builds and checks statements, :mod:`.slsa` turns a build
context into a SLSA v1 predicate, :mod:`.image` describes an image in a store.
"""
