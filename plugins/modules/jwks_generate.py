#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: jwks_generate
short_description: Build the JSON Web Key Set of a service account issuer from its keys
version_added: 0.1.0
description:
  - Builds the JWKS that a Kubernetes service account issuer publishes at C(openid/v1/jwks), from the
    issuer's signing keys, and optionally writes it to a file.
  - The result is identical to the output of C(azwi jwks) and to kube-apiserver's C(/openid/v1/jwks) for the
    same keys. Each key becomes one JWK with C(use=sig), C(kid) the base64url (without padding) SHA-256
    digest of the key's DER SubjectPublicKeyInfo, C(alg=RS256) for RSA keys and C(ES256), C(ES384) or
    C(ES512) for ECDSA keys on P-256, P-384 or P-521.
  - Every PEM block of every input is read. Blocks that hold no key, such as C(EC PARAMETERS) or
    C(CERTIFICATE REQUEST), are skipped, as C(azwi) does. An input without any key fails.
  - A key given more than once (for example as private key file and as public key) appears once, at its
    first position. C(azwi) would list it twice.
  - Fails, naming the input and the PEM block, on what C(azwi) and kube-apiserver would silently skip -
    a PKCS#1 C(RSA PUBLIC KEY) block (the message gives the C(openssl) command that converts it), an
    encrypted private key, a key that kube-apiserver cannot sign tokens with (Ed25519, DSA, curves other than
    P-256/P-384/P-521, RSA-PSS keys, RSA keys under 1024 bits), a block that does not parse.
  - RSA keys of 1024 to 2047 bits are accepted with a warning.
  - Touches nothing but O(dest). Runs wherever the key files are, usually the controller (C(delegate_to) V(localhost)).
author:
  - arcwi maintainers (!UNKNOWN)
requirements:
  - cryptography >= 41.0.0 (Python library) on the host that runs the module
extends_documentation_fragment:
  - arcwi.workload_identity.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the keys and O(dest) and predicts RV(ignore:changed) without writing.
  diff_mode:
    support: full
    details:
      - With O(dest), shows the file content before and after, and a mode change.
  idempotent:
    support: full
options:
  public_keys:
    description:
      - Paths of PEM files on the host that runs the module, each holding one or more keys.
      - Accepted blocks are C(PUBLIC KEY) (SubjectPublicKeyInfo), C(CERTIFICATE) (its public key), and
        unencrypted private keys C(PRIVATE KEY) (PKCS#8), C(RSA PRIVATE KEY) (PKCS#1) and C(EC PRIVATE KEY)
        (SEC 1), of which only the public part is used.
      - Keys from these files come first in the JWKS, in the order given, then those of O(public_keys_content).
      - At least one of O(public_keys) and O(public_keys_content) is required.
    type: list
    elements: path
  public_keys_content:
    description:
      - PEM text of public keys, each item holding one or more C(PUBLIC KEY) or C(CERTIFICATE) blocks.
      - Private keys are refused here, because module arguments can end up in logs and in the task's
        result; give private keys as files in O(public_keys).
    type: list
    elements: str
  dest:
    description:
      - Write the JWKS to this file, in the format of C(azwi jwks --output-file) (two-space indented JSON,
        no trailing newline), replacing it atomically, and only when its content differs.
      - The directory must exist.
      - When not set, nothing is written and the JWKS is only returned in RV(jwks).
    type: path
  mode:
    description:
      - Permissions of O(dest), as an octal string such as V('0644') or in symbolic form such as V(u=rw,g=r,o=r).
      - The JWKS holds public keys only, hence the default, which also applies to an existing file.
      - Ignored when O(dest) is not set.
    type: raw
    default: '0644'
notes:
  - The member order of each JWK and the zero padding of EC coordinates to the curve size follow go-jose, the
    library kube-apiserver and C(azwi) use, so that the file compares byte for byte with theirs.
  - EC private keys in PKCS#8 form (C(PRIVATE KEY)) are read, although C(azwi jwks) does not read them.
seealso:
  - name: azwi jwks
    description: The azure-workload-identity command whose output this module reproduces.
    link: https://azure.github.io/azure-workload-identity/docs/installation/azwi.html
  - module: community.crypto.openssl_privatekey
  - module: community.crypto.openssl_publickey
"""

EXAMPLES = r"""
- name: Build the issuer's JWKS from its signing key pair and write it next to the key
  arcwi.workload_identity.jwks_generate:
    public_keys:
      - /etc/arcwi/sa-signer.pub
    dest: /etc/arcwi/jwks.json
  delegate_to: localhost
  register: issuer_jwks

- name: Show the key IDs kube-apiserver will put in its tokens
  ansible.builtin.debug:
    var: issuer_jwks.kids

- name: During a rotation, publish the new key and the previous one (still validating older tokens)
  arcwi.workload_identity.jwks_generate:
    public_keys:
      - /etc/arcwi/sa-signer-2.key
      - /etc/arcwi/sa-signer-1.pub
    dest: /etc/arcwi/jwks.json

- name: Public keys given as text, for example read from a vault or another host
  arcwi.workload_identity.jwks_generate:
    public_keys_content:
      - "{{ lookup('ansible.builtin.file', '/etc/arcwi/sa-signer.pub') }}"
  register: issuer_jwks
"""

RETURN = r"""
jwks:
  description:
    - The JSON Web Key Set, one JWK per distinct key, in input order.
    - The members of each JWK are C(use), C(kty), C(kid), then C(alg), C(n) and C(e) for RSA keys,
      or C(crv), C(alg), C(x) and C(y) for EC keys.
  returned: success
  type: dict
  contains:
    keys:
      description: The JWKs.
      type: list
      elements: dict
      returned: success
  sample:
    keys:
      - use: sig
        kty: RSA
        kid: 3HJ-dY9TQb1s9s7m8EgcQak0NUWIZMOpRJg0UmzBDwQ
        alg: RS256
        n: sk1W0wcOUHiKRLY0-VgXVRbcwZ7u8ZrQs7Dji9CoTpx8...
        e: AQAB
kids:
  description: The C(kid) of each JWK in RV(jwks), in the same order.
  returned: success
  type: list
  elements: str
  sample:
    - 3HJ-dY9TQb1s9s7m8EgcQak0NUWIZMOpRJg0UmzBDwQ
dest:
  description:
    - The path of the JWKS file, as given in O(dest).
    - RV(ignore:changed) tells whether it was written (or, in check mode, would be).
  returned: when O(dest) is set
  type: str
  sample: /etc/arcwi/jwks.json
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.arcwi.workload_identity.plugins.module_utils._jwks import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    JwksError,
    run_module,
)


def argument_spec() -> dict:
    return dict(
        public_keys=dict(type="list", elements="path"),
        public_keys_content=dict(type="list", elements="str", no_log=False),
        dest=dict(type="path"),
        mode=dict(type="raw", default="0644"),
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[("public_keys", "public_keys_content")],
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        module.exit_json(**run_module(module))
    except JwksError as exc:
        module.fail_json(msg=str(exc), **exc.to_result())


if __name__ == "__main__":
    main()
