"""The renewal worker's order threads share the CA's directory and a nonce pool (issue 19): from
an empty store, the order threads of one run fetch the directory once between them, not once
each, and every answer's nonce serves any thread's next request."""
from acme_site import site_config, wait_for_pebble_cert


def test_order_threads_fetch_the_directory_once(httpd, pebble):
    names = [[f"share{i}.test"] for i in range(6)]       # six order threads (default eight)
    httpd.write_config(site_config(httpd, pebble, names))
    httpd.start()
    for n in names:
        wait_for_pebble_cert(httpd, n)
    reqs = pebble.requests()
    dirs = reqs.count(("GET", "/dir"))
    heads = reqs.count(("HEAD", "/nonce-plz"))
    posts = sum(1 for m, _ in reqs if m == "POST")
    # One fetch for the six order threads; the worker run after the activation restart (a new
    # process) may have fetched once more by now. Each thread fetched its own before: six.
    assert dirs <= 2, reqs
    # Nonces: every POST needs one; without sharing each thread's first one came from HEAD. How
    # many HEADs the threads still need depends on how their requests interleave: at most one
    # per thread, never more than without the pool.
    assert heads <= len(names), reqs
    assert posts >= 6 * len(names)
