"""MIKEY in real SIP calls (RFC 3261 signalling, RFC 4567 key-mgmt in SDP, SRTP media).

``adapter`` wraps the SIP library behind a small interface of ours; ``phone`` is a user agent
that keys SRTP with any MIKEY method; ``media`` sends and receives RTP over SRTP on UDP;
``kamailio`` runs the Kamailio proxy/registrar with the project's configuration;
``usecases`` holds MIKEY's six use cases (RFC 3830 §2.1, RFC 6267 §3), each run end to end.
"""
