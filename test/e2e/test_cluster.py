"""Clustering through etcd (issue 16).

Configuration: ACMECluster and its companions are refused by configtest with file, line and the
fix (bad endpoints, a cluster key readable by others or too short); without ACMECluster nothing
changes. The directive-by-directive bad usages are in test_config.py's table.
"""
import os
import re

import pytest

import harness

KEY_TEXT = "q0mXv7cY4l2f9J0o0b6Zq8n3h1x5r7t9w2e4u6i8o0p=\n"     # openssl rand -base64 32


def write_key(workdir, text=KEY_TEXT, mode=0o600, name="cluster.key"):
    path = os.path.join(str(workdir), name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def cluster_conf(key, endpoints="http://127.0.0.1:2379", extra=""):
    return f"ACMECluster etcd {endpoints}\nACMEClusterKey {key}\nACMEClusterNode n1\n{extra}"


def syntax_error_at(out, conf_path, needle):
    n = next(i for i, t in enumerate(conf_path.read_text().splitlines(), 1) if needle in t)
    return re.search(rf"Syntax error on line {n} of {re.escape(str(conf_path))}:", out)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_readable_by_others_is_refused(httpd_alone, mode):
    key = write_key(httpd_alone.workdir, mode=mode)
    conf_path = httpd_alone.write_config(cluster_conf(key))
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "Syntax OK" not in out, out
    assert syntax_error_at(out, conf_path, "ACMEClusterKey"), out
    assert "can be read by others" in out and f"chmod 600 {key}" in out, out


def test_short_key_is_refused(httpd_alone):
    # 31 bytes and a newline: the newline does not count
    key = write_key(httpd_alone.workdir, text="0123456789012345678901234567890\n")
    conf_path = httpd_alone.write_config(cluster_conf(key))
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "Syntax OK" not in out, out
    assert syntax_error_at(out, conf_path, "ACMEClusterKey"), out
    assert "must hold 32 bytes" in out and "openssl rand -base64 32" in out, out


@pytest.mark.parametrize("endpoints,reason", [
    ("http://127.0.0.1:2379,127.0.0.2:2379", "is no etcd endpoint"),
    ("http://127.0.0.1:99999", "from 1 to 65535"),
    ("https://127.0.0.1:2379/v3", "nothing else"),
])
def test_bad_endpoint_is_refused(httpd_alone, endpoints, reason):
    key = write_key(httpd_alone.workdir)
    conf_path = httpd_alone.write_config(cluster_conf(key, endpoints))
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    assert syntax_error_at(out, conf_path, "ACMECluster etcd"), out
    assert reason in out, out


def test_good_cluster_configuration_passes(httpd_alone):
    key = write_key(httpd_alone.workdir)
    httpd_alone.write_config(cluster_conf(
        key, "http://127.0.0.1:2379,https://[::1]:2379,http://etcd-c:2379 prefix=/prod/web"))
    rc, out = httpd_alone.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    assert "ACME12002" in out     # https without ACMEClusterTLS: a warning, not a refusal


def test_key_without_cluster_is_refused(httpd_alone):
    key = write_key(httpd_alone.workdir)
    httpd_alone.write_config(f"ACMEClusterKey {key}\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "ACME12001" in out, out
