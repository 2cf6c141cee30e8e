"""The DNS's own numbers, named once: record types, classes, rcodes, opcodes, header and EDNS flags, sizes.

Every other module imports these names rather than writing a DNS number as a literal (dnspython keeps
the same vocabulary in ``rdatatype``, ``rdataclass``, ``rcode`` and ``flags``). They are plain ints:
the hot path compares and masks them, and dnslib takes them where it wants a type or class.
"""

from __future__ import annotations

# Record types (RFC 1035, 3596, 2782, 6891, 8945) and query-only types (RFC 1995, 5936, 8482).
A = 1
NS = 2
CNAME = 5
SOA = 6
PTR = 12
HINFO = 13
MX = 15
TXT = 16
AAAA = 28
SRV = 33
OPT = 41
RRSIG = 46
TSIG = 250
IXFR = 251
AXFR = 252
ANY = 255

# Classes (RFC 1035, RFC 2136), and their names as zone files and CoreDNS's Corefile write them.
IN = 1
CS = 2
CH = 3
HS = 4
NONE = 254  # the class ANY is 255, as the type ANY is
CLASS_NAMES = {"IN": IN, "CS": CS, "CH": CH, "HS": HS, "NONE": NONE, "ANY": ANY}

# Response codes (RFC 1035, RFC 6891: BADVERS is extended, its upper bits ride in the OPT record).
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
YXDOMAIN = 6  # RFC 2136
YXRRSET = 7
NXRRSET = 8
NOTAUTH = 9
NOTZONE = 10
BADVERS = 16  # also BADSIG (RFC 2845): the extended rcodes share numbers by where they appear
BADKEY = 17
BADTIME = 18
BADMODE = 19
BADNAME = 20
BADALG = 21
BADTRUNC = 22
BADCOOKIE = 23
MAX_RCODE = BADCOOKIE  # the largest rcode with a name (and CoreDNS's bound on a numeric one)
RCODE_MASK = 0x000F  # the header's share of an rcode
EXTENDED_RCODE_SHIFT = 4  # the rest sits in the OPT TTL's top byte
HEADER_RCODES = {  # by name, the rcodes a header's four bits carry (the names CoreDNS's options take)
    "NOERROR": NOERROR,
    "FORMERR": FORMERR,
    "SERVFAIL": SERVFAIL,
    "NXDOMAIN": NXDOMAIN,
    "NOTIMP": NOTIMP,
    "REFUSED": REFUSED,
    "YXDOMAIN": YXDOMAIN,
    "YXRRSET": YXRRSET,
    "NXRRSET": NXRRSET,
    "NOTAUTH": NOTAUTH,
    "NOTZONE": NOTZONE,
}
# The names CoreDNS's logs give rcodes (miekg/dns's): 16 is BADSIG there, BADVERS or not.
RCODE_NAMES = {number: name for name, number in HEADER_RCODES.items()} | {
    BADVERS: "BADSIG",
    BADKEY: "BADKEY",
    BADTIME: "BADTIME",
    BADMODE: "BADMODE",
    BADNAME: "BADNAME",
    BADALG: "BADALG",
    BADTRUNC: "BADTRUNC",
    BADCOOKIE: "BADCOOKIE",
}

# Header flags (the 16 bits after the ID), and the opcode's place among them.
QR = 0x8000
OPCODE_MASK = 0x7800
OPCODE_SHIFT = 11
NOTIFY = 4  # opcodes other than a query's 0 (RFC 1996, RFC 2136)
UPDATE = 5
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
Z = 0x0040  # reserved: zero in every message kdns makes
AD = 0x0020
CD = 0x0010
ECHOED_FLAGS = RD | CD  # copied from the query into the response (RFC 1035, RFC 6840)
FLAG_NAMES = (("qr", QR), ("aa", AA), ("tc", TC), ("rd", RD), ("ra", RA), ("z", Z), ("ad", AD), ("cd", CD))


# EDNS (RFC 6891): the OPT record's TTL holds the extended rcode, the version and the DO bit.
EDNS_DO = 0x8000
EDNS_VERSION_SHIFT = 16

# EDNS option codes (RFC 5001, RFC 7871) and the address families of a client subnet option (IANA).
EDNS_NSID = 3
EDNS_CLIENT_SUBNET = 8
FAMILY_IPV4 = 1
FAMILY_IPV6 = 2

# Sizes and limits (RFC 1035, RFC 2181, RFC 7766).
HEADER_SIZE = 12
MAX_NAME_LENGTH = 255  # octets of a wire name, the root's zero included
MAX_LABEL_LENGTH = 63
POINTER_MARK = 0xC0  # a length byte with both top bits set starts a compression pointer
POINTER_LIMIT = 0x4000  # a pointer's 14 bits reach offsets below this
NO_EDNS_UDP_SIZE = 512  # the largest UDP message to a client without EDNS
TCP_MAX_SIZE = 65535  # a TCP message's two-byte length
MAX_TTL = 2**31 - 1  # larger TTLs mean 0 (RFC 2181 section 8)
PORT = 53
TLS_PORT = 853  # DNS over TLS (RFC 7858)
MDNS_PORT = 5353  # multicast DNS (RFC 6762): avahi-daemon's and mDNSResponder's on desktops
