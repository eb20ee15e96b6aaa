"""Deploy to IBM Cloud Code Engine by digest, and the audits that make the gate the only way in.

The gate is only worth something if nothing else can deploy: ``codeengine``
deploys exactly the digest the gate allowed, ``iam`` checks that no identity but
the deployer can write to the project, and ``bindings`` checks that the secrets
and config maps an app runs with are the ones the team declared.
"""
