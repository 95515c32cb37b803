# Sourced by .ci/run. Makes sure the `mosquitto` broker binary exists for
# the interop tests (tests/common/mosquitto.rs starts its own instances on
# free ports; with CI set, a missing binary fails those tests instead of
# skipping them).

minimqtt_have_mosquitto() {
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]
}

minimqtt_ensure_mosquitto() {
    if ! minimqtt_have_mosquitto; then
        echo "installing mosquitto for the interop tests"
        apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null || return 1
    fi
    # The Debian package may start a system daemon on port 1883. The tests
    # never use it; stop it so no stray broker answers on a well-known port.
    if command -v service >/dev/null 2>&1; then
        service mosquitto stop >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1; then
        systemctl stop mosquitto >/dev/null 2>&1 || true
    fi
    if [ -s /run/mosquitto/mosquitto.pid ]; then
        kill "$(cat /run/mosquitto/mosquitto.pid)" 2>/dev/null || true
    fi
    if ! minimqtt_have_mosquitto; then
        echo "mosquitto is still missing after apt-get install" >&2
        return 1
    fi
}

# Last command: its status is the status of sourcing this file.
minimqtt_ensure_mosquitto
