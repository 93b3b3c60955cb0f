# sipbridge: HTTP API on 8080, SIP user agent on 5070 (UDP and TCP), tracker in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/sipbridge
COPY pyproject.toml README.md ./
COPY sipbridge ./sipbridge
COPY sip_profiles ./sip_profiles
RUN pip install . \
 && useradd --system --create-home --home-dir /data sipbridge

USER sipbridge
# Listen on all interfaces inside the container; set SIPBRIDGE_SIP_CONTACT_HOST to the address
# phones can reach when the container's own address is not it (published ports, NAT).
ENV SIPBRIDGE_DATA_DIR=/data \
    SIPBRIDGE_SIP_PROFILES_DIR=/opt/sipbridge/sip_profiles \
    SIPBRIDGE_HTTP_HOST=0.0.0.0 \
    SIPBRIDGE_SIP_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8080/tcp 5070/udp 5070/tcp
CMD ["sipbridge", "serve"]
