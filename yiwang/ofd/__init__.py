"""E-certificate files (GB/T 36905): OFD documents (GB/T 33190) with GB/T 36903
metadata, sealed with SM2/SM3 in the GB/T 38540 structure.

* :mod:`yiwang.ofd.writer` builds the package (vector card, embedded font subset, QR as paths);
* :mod:`yiwang.ofd.seal` holds the ASN.1 (``SES_Seal`` / ``SES_Signature``) and the
  department's self-issued SM2 certificate;
* :mod:`yiwang.ofd.verifier` checks an uploaded file offline against the published keys;
* :mod:`yiwang.ofd.files` makes the files of stored certificates and copies;
* ``python -m yiwang.ofd verify FILE --keys keys.json`` is the offline command.
"""
