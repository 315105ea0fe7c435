"""A sidecar (Envoy or meshproxy) is served by the real meshd: a raw ADS
client over Debian's python3-grpcio follows LDS -> RDS -> CDS -> EDS as
Envoy does (wildcards for LDS and CDS, RDS names from the HTTP connection
managers, EDS names from the EDS clusters, every response ACKed), sees a
VirtualService edit pushed as a new route, and a NACK recorded in
/debug/syncz.

The protobuf wire format is read and written by hand (a few fields of
DiscoveryRequest/Response, Listener, HCM, Cluster, RouteConfiguration):
Debian ships no Python classes for Envoy's API.
"""
import os
import queue
import unittest

import grpc

from meshtest import ROOT, Meshd, wait_for

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
T = "type.googleapis.com/envoy.config."
LDS = T + "listener.v3.Listener"
RDS = T + "route.v3.RouteConfiguration"
CDS = T + "cluster.v3.Cluster"
EDS = T + "endpoint.v3.ClusterLoadAssignment"
NODE_ID = "sidecar~127.0.0.1~greeter-v1.demo~demo.svc.cluster.local"
GREETER = "greeter.demo.svc.cluster.local"



# ---------------------------------------------------------------- wire

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """A length-delimited field (bytes or str)."""
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def parse(data):
    """{field number: [values]}: varints as int, length-delimited as bytes."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(data, i)
        elif wt == 2:
            n, i = read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wt == 1:
            v, i = data[i:i + 8], i + 8
        elif wt == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def read_varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def struct(entries):
    """google.protobuf.Struct: fields entries (key 1, Value 2); Value.string_value 3, struct_value 5."""
    out = b""
    for k, v in entries.items():
        value = field(5, struct(v)) if isinstance(v, dict) else field(3, v)
        out += field(1, field(1, k) + field(2, value))
    return out


def node():
    meta = struct({"NAMESPACE": "demo", "SERVICE_ACCOUNT": "greeter", "INTERCEPTION_MODE": "REDIRECT",
                   "LABELS": {"app": "greeter", "version": "v1"}})
    return field(1, NODE_ID) + field(2, "demo") + field(3, meta)


def request(type_url, names=(), version="", nonce="", error=None, with_node=False):
    out = field(1, version) if version else b""
    if with_node:
        out += field(2, node())
    for n in names:
        out += field(3, n)
    out += field(4, type_url)
    if nonce:
        out += field(5, nonce)
    if error:
        out += field(6, varint(1 << 3) + varint(13) + field(2, error))  # google.rpc.Status
    return out


class Response:
    def __init__(self, data):
        f = parse(data)
        self.version = f.get(1, [b""])[0].decode()
        self.type_url = f.get(4, [b""])[0].decode()
        self.nonce = f.get(5, [b""])[0].decode()
        self.resources = [parse(a)[2][0] for a in f.get(2, [])]  # Any.value

    def names(self):
        return [parse(r)[1][0].decode() for r in self.resources]


def rds_names(listeners):
    """route_config_name of every HCM (Listener.filter_chains 3 and default_filter_chain 25,
    FilterChain.filters 3, Filter.typed_config 4 -> Any.value 2, HCM.rds 3 -> route_config_name 2)."""
    out = set()
    for raw in listeners:
        lf = parse(raw)
        for chain in lf.get(3, []) + lf.get(25, []):
            for flt in parse(chain).get(3, []):
                ff = parse(flt)
                if ff.get(1, [b""])[0] != b"envoy.filters.network.http_connection_manager":
                    continue
                hcm = parse(parse(ff[4][0])[2][0])
                for rds in hcm.get(3, []):
                    out.update(n.decode() for n in parse(rds).get(2, []))
    return out


def eds_names(clusters):
    """Clusters of type EDS (Cluster.type 2 == 3): eds_cluster_config (3).service_name (2), else the name."""
    out = set()
    for raw in clusters:
        cf = parse(raw)
        if cf.get(2, [0])[0] != 3:
            continue
        cfg = parse(cf[3][0]) if 3 in cf else {}
        out.add((cfg.get(2) or cf[1])[0].decode())
    return out


class Stream:
    """One ADS stream: requests go through a queue, responses are read with a bound."""

    def __init__(self, port):
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        self.q = queue.Queue()
        self.calls = self.channel.stream_stream(ADS)(iter(self.q.get, None), timeout=120)

    def send(self, data):
        self.q.put(data)

    def recv(self, type_url):
        r = Response(next(self.calls))
        if r.type_url != type_url:
            raise AssertionError("expected %s, got %s" % (type_url, r.type_url))
        return r

    def ack(self, r, names=()):
        self.send(request(r.type_url, names, r.version, r.nonce))

    def close(self):
        self.q.put(None)
        self.calls.cancel()
        self.channel.close()


class SidecarXdsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        files = {}
        for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
            with open(os.path.join(ROOT, "examples", name)) as f:
                files[name] = f.read()
        # the caches' verify mode (README, debugging): every push also
        # rebuilds what they share and compares; test_04 reads its verdict
        cls.meshd = Meshd(files, env={"MESHD_GEN_CACHE_VERIFY": "1"}).start()
        cls.s = Stream(cls.meshd.xds_port)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()
        cls.meshd.finish()

    def test_01_lds_rds_cds_eds(self):
        s = self.s
        s.send(request(LDS, with_node=True))
        lds = s.recv(LDS)
        names = lds.names()
        for want in ("virtualOutbound", "virtualInbound", "0.0.0.0_50051"):
            self.assertIn(want, names)
        routes = sorted(rds_names(lds.resources))
        self.assertIn("50051", routes)
        s.ack(lds)

        s.send(request(RDS, routes))
        rds = s.recv(RDS)
        self.assertEqual(sorted(rds.names()), routes)
        rc = parse(dict(zip(rds.names(), rds.resources))["50051"])
        domains = set()
        for vh in rc.get(2, []):
            domains.update(d.decode() for d in parse(vh).get(2, []))
        self.assertIn(GREETER, domains)
        # no short names for a ServiceEntry; no :PORT forms (Istio >= 1.20):
        # the route config ignores the Host's port (field 14)
        self.assertNotIn(GREETER + ":50051", domains)
        self.assertEqual(rc.get(14), [1], "ignore_port_in_host_matching not set")
        self.assertIn(b"split", rc[2][0] if len(rc[2]) == 1 else b"".join(rc[2]))  # the VirtualService's route
        s.ack(rds, routes)

        s.send(request(CDS))
        cds = s.recv(CDS)
        cnames = cds.names()
        for want in ("outbound|50051||" + GREETER, "outbound|50051|v1|" + GREETER,
                     "BlackHoleCluster", "PassthroughCluster"):
            self.assertIn(want, cnames)
        self.assertTrue(any(n.startswith("inbound|") for n in cnames), cnames)
        eds = sorted(eds_names(cds.resources))
        self.assertIn("outbound|50051||" + GREETER, eds)
        s.ack(cds)

        s.send(request(EDS, eds))
        ep = s.recv(EDS)
        self.assertEqual(sorted(ep.names()), eds)
        s.ack(ep, eds)
        self.__class__.routes, self.__class__.eds = routes, eds

        def synced():
            streams = [x for x in self.meshd.json("/debug/syncz") if x["proxy"] == NODE_ID]
            if not streams or streams[0]["flavour"] != "sidecar":
                return False
            types = streams[0]["types"]
            return all(types.get(t, {}).get("state") == "SYNCED" for t in ("lds", "rds", "cds", "eds"))
        wait_for(synced, what="the sidecar SYNCED in /debug/syncz")
        dump = self.meshd.http("/debug/config_dump?proxyID=" + NODE_ID)
        self.assertEqual(dump[0], 200)
        self.assertIn("virtualOutbound", dump[1])

    def test_02_virtual_service_edit_pushes_route(self):
        s = self.s
        with open(os.path.join(ROOT, "examples", "traffic.yaml")) as f:
            traffic = f.read()
        self.assertIn("- name: split", traffic)
        # the greeter VirtualService's weighted route gets a new name
        self.meshd.write("traffic.yaml", traffic.replace("- name: split", "- name: edited-by-test"))
        for _ in range(10):  # other types may be pushed too: ACK them as Envoy does
            r = Response(next(s.calls))
            if r.type_url == RDS and any(b"edited-by-test" in x for x in r.resources):
                self.__class__.last_rds = r  # answered by test_03
                break
            s.ack(r, self.routes if r.type_url == RDS else self.eds if r.type_url == EDS else ())
        else:
            self.fail("no RouteConfiguration with the edited route")

    def test_03_nack_in_syncz(self):
        s = self.s
        r = self.last_rds
        s.send(request(RDS, self.routes, "", r.nonce, error="meshproxy: route rejected by test"))

        def nacked():
            streams = [x for x in self.meshd.json("/debug/syncz") if x["proxy"] == NODE_ID]
            rds = streams and streams[0]["types"].get("rds")
            return rds and rds["state"] == "ERROR" and "rejected by test" in rds.get("error", "")
        wait_for(nacked, what="the NACK in /debug/syncz")

    def test_04_cache_verify_mode_compared_and_agreed(self):
        """MESHD_GEN_CACHE_VERIFY=1: the pushes so far (start, the VirtualService edit) rebuilt the
        sidecar config without the shared groups and found the same bytes."""
        import re
        logs = self.meshd.logs()
        self.assertIn("MESHD_GEN_CACHE_VERIFY", logs)
        runs = [(int(a), int(b)) for a, b in
                re.findall(r"gen cache verify: (\d+) sidecar configs rebuilt without the shared groups and "
                           r"compared, (\d+) differed", logs)]
        self.assertTrue(runs and sum(a for a, _ in runs) > 0, "no sidecar config was verified:\n" + logs[-3000:])
        self.assertEqual(sum(b for _, b in runs), 0, logs[-3000:])
        self.assertNotIn("differs from a build without the shared groups", logs)
        self.assertNotIn("misses an input", logs)
        self.assertRegex(logs, r"gen cache verify: \d+ reused proxyless groups rebuilt and compared, 0 differed")


if __name__ == "__main__":
    unittest.main()
