"""Credentials out of URLs before they are printed, logged or put in a message.

Tracking URIs (postgresql://user:password@db/mlflow), S3 endpoints, webhooks and API hosts reach
logs, CI output and chat. `mask_credentials` keeps what locates a resource (scheme, host, port,
path, the names of query parameters) and masks what authenticates (user:password@, a bare token@,
query values). When a URL is ambiguous it masks too much rather than too little: a password may
hold an unencoded @ (SQLAlchemy accepts it) or / ? #, so the user part runs to the last @ that can
end it.
"""

from __future__ import annotations

import re

MASK = "***"

# A scheme and everything after it up to whitespace: the URL's end is decided below, not by the regex.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S*")
# Punctuation that ends a sentence or a quotation rather than a port: 'http://host:5000', or "host:5000."
_TRAILING = ".,;!?'\"`()<>{}"


def _port_is_not_a_number(authority: str) -> bool:
    """`user:password` read as host:port: after the host's last colon comes something other than digits."""
    authority = authority.rstrip(_TRAILING)
    host = authority.rpartition("]")[2] if authority.startswith("[") else authority  # [::1]:5000
    _, colon, port = host.rpartition(":")
    return bool(colon) and port != "" and not port.isdigit()


def _mask_pairs(text: str) -> str:
    """`a=1&b=2` as `a=***&b=***`; an item without a name is masked whole. Every value goes:
    which parameter carries a secret (token, sig, X-Amz-Signature, password...) is not knowable."""
    pairs = []
    for item in text.split("&"):
        name, equals, value = item.partition("=")
        pairs.append(f"{name}={MASK}" if equals and value else item if equals else MASK if item else "")
    return "&".join(pairs)


def _mask_after_scheme(rest: str) -> str:
    """`rest` is what follows `scheme://`."""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        rest = f"{MASK}@{rest[authority.rfind('@') + 1 :]}"
    elif _port_is_not_a_number(authority):
        at = rest.rfind("@")
        # user:pa/ss@host (a password with an unencoded / ? or #), or user:password with no host
        # (the user is kept, the rest masked)
        user = authority.partition(":")[0]
        rest = f"{MASK}@{rest[at + 1 :]}" if at != -1 else f"{user}:{MASK}{rest[len(authority) :]}"
    base, hash_, fragment = rest.partition("#")
    base, question, query = base.partition("?")
    masked = base + question + _mask_pairs(query)
    # A UI route (#/runs/details/r1) stays; a fragment of name=value pairs (#access_token=) does not.
    return masked + hash_ + (_mask_pairs(fragment) if "=" in fragment else fragment)


def mask_credentials(text: str) -> str:
    """`text` with the credentials of every URL in it masked.

    postgresql://u:p@ss@db/mlflow -> postgresql://***@db/mlflow; https://token@host -> https://***@host;
    s3://b/k?X-Amz-Signature=abc -> s3://b/k?X-Amz-Signature=***. Text without a URL is unchanged,
    except a single word of the form user:password@host[:port] (a host given without its scheme).
    """
    text = str(text)
    word = text.strip()
    if "://" not in text and word and not any(c.isspace() for c in word):
        authority = re.split(r"[/?#]", word, maxsplit=1)[0]
        if ":" in authority.rpartition("@")[0]:  # user:password@host; name@alias is left alone
            return text.replace(word, _mask_after_scheme(word), 1)
        return text
    return _URL.sub(lambda m: m[0][: m[0].index("://") + 3] + _mask_after_scheme(m[0][m[0].index("://") + 3 :]), text)
