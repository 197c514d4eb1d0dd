"""Clustering through etcd (issue 16): etcd gone for good must not let a certificate expire.
With every etcd member stopped a node orders nothing while its certificate is fine, but once
the certificate reaches its emergency floor (a twentieth of its life before expiry, or expired)
it orders alone (ACME12015, CRIT) and serves the new certificate. Real etcd (3 members), real
Pebble issuing 60-second certificates (PEBBLE_VA_ALWAYS_VALID), a real httpd node."""
import os
from pathlib import Path

import pytest

import harness
from acme_site import (new_orders, serial_of, served_cert, site_config, status,
                       wait_for_pebble_cert)
from etcd_cluster import EtcdCluster

KEY_TEXT = "c2l4dHkgc2Vjb25kIGNlcnRpZmljYXRlcyBhbmQgbm8gZXRjZCBhdCBhbGw=\n"
NAME = "alone.cluster.test"


@pytest.fixture
def etcd(workdir):
    cluster = EtcdCluster(workdir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def pebble_short(workdir):
    server = harness.Pebble(workdir, {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"},
                                      "config": {"certificateValidityPeriod": 60}})
    try:
        yield server.start()
    finally:
        server.stop()


def test_with_etcd_gone_a_certificate_at_its_floor_is_ordered_alone(workdir, etcd,
                                                                    pebble_short):
    key = Path(workdir) / "cluster.key"
    key.write_text(KEY_TEXT)
    os.chmod(key, 0o600)
    os.makedirs(Path(workdir) / "n1")
    node = harness.Httpd(Path(workdir) / "n1")
    try:
        node.write_config(site_config(node, pebble_short, [[NAME]], extra=(
            f"ACMECluster etcd {etcd.endpoints}\nACMEClusterKey {key}\nACMEClusterNode n1\n")))
        node.start()
        first = serial_of(wait_for_pebble_cert(node, [NAME], timeout=90))
        etcd.stop()
        orders = len(new_orders(pebble_short))
        # Renewal is due at half the life (30 s); etcd is down, so nothing is ordered until
        # the floor; then the node orders alone and serves the new certificate.
        harness.wait_for(lambda: "ACME12015" in node.log_text(), 180,
                         "the emergency order without etcd")
        text = wait_for_pebble_cert(node, [NAME], timeout=60, not_serial=first)
        log = node.log_text()
        assert "ACME12010" in log, log[-3000:]      # etcd's trouble was reported first
        # First refused while the certificate was fine (the renewal at half its life), then
        # ordered alone at the floor.
        assert "no node orders while it is" in log, log[-3000:]
        assert log.index("no node orders while it is") < log.index("ACME12015"), log[-3000:]
        assert len(new_orders(pebble_short)) >= orders + 1
        assert serial_of(text) != first and node.running()
        cl = status(node).get("cluster", {})
        assert cl.get("etcd", {}).get("healthy") is False, cl
        assert served_cert(node, NAME)
    finally:
        node.stop()
