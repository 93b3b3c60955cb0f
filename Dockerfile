# sipbridge: HTTP API on 8080, SIP user agent on 5070 (UDP and TCP; worker i of
# SIPBRIDGE_WORKERS on 5070 + i), SIP listener on 5062, tracker in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/sipbridge
COPY pyproject.toml README.md ./
COPY sipbridge ./sipbridge
COPY sip_profiles ./sip_profiles
# jemalloc gives freed memory back where glibc keeps it in steps (docs/performance.md, "Memory").
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(find /usr/lib -name libjemalloc.so.2 | head -n 1)" /usr/local/lib/libjemalloc.so.2 \
 && pip install . \
 && useradd --system --create-home --home-dir /data sipbridge
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2

USER sipbridge
# Listen on all interfaces inside the container; set SIPBRIDGE_SIP_CONTACT_HOST to the address
# phones can reach when the container's own address is not it (published ports, NAT).
ENV SIPBRIDGE_DATA_DIR=/data \
    SIPBRIDGE_SIP_PROFILES_DIR=/opt/sipbridge/sip_profiles \
    SIPBRIDGE_HTTP_HOST=0.0.0.0 \
    SIPBRIDGE_SIP_HOST=0.0.0.0
VOLUME ["/data"]
# 5071 and 5063: SIP over TLS (UA, listener) when SIPBRIDGE_SIP_TLS_PORT / _LISTEN_TLS_PORT say so.
EXPOSE 8080/tcp 5070/udp 5070/tcp 5062/udp 5062/tcp 5071/tcp 5063/tcp
CMD ["sipbridge", "serve"]
