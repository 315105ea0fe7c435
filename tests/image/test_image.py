"""`make image-test`: meshd and meshproxy run from the images `make image`
built (meshd:TAG, meshproxy:TAG), not from build/bin.

meshd serves a copy of examples/ from its image and answers /ready 200;
meshproxy from its image connects to that meshd over ADS and answers its
admin /ready 200 once its first configuration has arrived.  Both run with
`buildah run --isolation chroot` on the host network (what works on these
machines without a registry or a daemon), as the images' own non-root users,
on ports from free_port().  Outside `make test`: building the images takes
minutes.  Nothing here asserts on timing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from meshtest import free_port, wait_for  # noqa: E402


def tag():
    if os.environ.get("TAG"):
        return os.environ["TAG"]
    r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "dev"


TAG = tag()
# the storage scripts/image.sh built into (IMAGE_STORAGE=vfs: a vfs one of its own)
if os.environ.get("IMAGE_STORAGE") == "vfs":
    os.environ["CONTAINERS_STORAGE_CONF"] = os.path.join(ROOT, "build", "image", "storage-vfs.conf")


def buildah(*args):
    r = subprocess.run(["buildah"] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("buildah %s: %s" % (" ".join(args), r.stderr))
    return r.stdout.strip()


def http_status(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def http_body(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.read().decode(errors="replace")


class Container:
    """A working container from IMAGE running ARGS in the foreground of its
    own process group (so the test can end it and whatever buildah started)."""

    def __init__(self, image, args, volumes=()):
        self.image = image
        self.name = buildah("from", "--pull=never", "--quiet", image)
        self.dir = tempfile.mkdtemp(prefix="image-it-")
        self.log_path = os.path.join(self.dir, "out.log")
        self.log = open(self.log_path, "w")
        cmd = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        for host, inside in volumes:
            cmd += ["--volume", "%s:%s:ro" % (host, inside)]
        self.proc = subprocess.Popen(cmd + [self.name, "--"] + list(args), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def uid(self, comm):
        """The real uid of process COMM among this container's processes (its
        process group), once it runs."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getpgid(int(pid)) != self.proc.pid:
                    continue
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() != comm:
                        continue
                with open("/proc/%s/status" % pid) as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            return int(line.split()[1])
            except (OSError, ValueError):
                continue
        return None

    def check_running(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited %s:\n%s" % (self.image, self.proc.returncode, self.logs()))

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-20000:]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        subprocess.run(["buildah", "rm", self.name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sizes = {}
        for name in ("meshd", "meshproxy"):
            out = buildah("images", "--format", "{{.Size}}", "%s:%s" % (name, TAG))
            cls.sizes[name] = out.splitlines()[0] if out else "?"
        # a copy of examples/, readable by the image's non-root user
        cls.config = tempfile.mkdtemp(prefix="image-it-config-")
        os.chmod(cls.config, 0o755)
        for f in sorted(os.listdir(os.path.join(ROOT, "examples"))):
            if f.endswith(".yaml"):
                shutil.copy(os.path.join(ROOT, "examples", f), cls.config)
                os.chmod(os.path.join(cls.config, f), 0o644)
        cls.xds_port, cls.http_port, cls.secure_port = free_port(), free_port(), free_port()
        cls.meshd = Container("meshd:%s" % TAG, [
            "/usr/local/bin/meshd", "--config-dir", "/etc/meshd/config",
            "--xds-addr", "127.0.0.1:%d" % cls.xds_port,
            "--http-addr", "127.0.0.1:%d" % cls.http_port,
            "--secure-addr", "127.0.0.1:%d" % cls.secure_port,
        ], volumes=[(cls.config, "/etc/meshd/config")])

    @classmethod
    def tearDownClass(cls):
        cls.meshd.stop()
        shutil.rmtree(cls.config, ignore_errors=True)
        print("\nimage sizes: meshd:%s %s, meshproxy:%s %s"
              % (TAG, cls.sizes["meshd"], TAG, cls.sizes["meshproxy"]), file=sys.stderr)

    def meshd_ready(self):
        self.meshd.check_running()
        return http_status(self.http_port, "/ready") == 200

    def test_1_meshd_ready(self):
        wait_for(self.meshd_ready, timeout=60, what="meshd (image) /ready")
        # the example configuration, read from the mounted copy
        self.assertIn("greeter.demo.svc.cluster.local", http_body(self.http_port, "/debug/registryz"))
        # the binary built from this tree, as distroless's nonroot user
        self.assertIn(TAG, http_body(self.http_port, "/version"))
        self.assertEqual(self.meshd.uid("meshd"), 65532)

    def test_1_meshctl_in_meshd_image(self):
        # meshctl ships beside meshd (kubectl exec ... meshctl): it loads and
        # validates the examples with the CRD schemas compiled into it
        c = buildah("from", "--pull=never", "--quiet", "meshd:%s" % TAG)
        try:
            r = subprocess.run(["buildah", "run", "--isolation", "chroot", "--network", "host",
                                "--volume", "%s:/etc/meshd/config:ro" % self.config, c, "--",
                                "/usr/local/bin/meshctl", "validate", "-f", "/etc/meshd/config"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            subprocess.run(["buildah", "rm", c], capture_output=True)

    def test_2_meshproxy_ready(self):
        wait_for(self.meshd_ready, timeout=60, what="meshd (image) /ready")
        admin, out, inb = free_port(), free_port(), free_port()
        proxy = Container("meshproxy:%s" % TAG, [
            "/usr/local/bin/meshproxy",
            "--xds-addr", "127.0.0.1:%d" % self.xds_port,
            "--node-id", "sidecar~127.0.0.1~sleep.default~default.svc.cluster.local",
            "--labels", "app=sleep",
            "--admin-addr", "127.0.0.1:%d" % admin,
            "--outbound-addr", "127.0.0.1:%d" % out,
            "--inbound-addr", "127.0.0.1:%d" % inb,
            "--status-addr", "", "--health-addr", "",
            "--exit-on-zero-active-connections",
        ])
        try:
            def ready():
                proxy.check_running()
                return http_status(admin, "/ready") == 200
            wait_for(ready, timeout=60, what="meshproxy (image) /ready")
            # its configuration came from the meshd in the other image
            self.assertIn("greeter.demo.svc.cluster.local", http_body(admin, "/config_dump"))
            # as Istio's proxy uid, the one the capture rules exclude
            self.assertEqual(proxy.uid("meshproxy"), 1337)
        except AssertionError:
            print(proxy.logs(), file=sys.stderr)
            raise
        finally:
            proxy.stop()


    def test_3_meshproxy_image_programs_capture(self):
        # the capture init container runs this image's iptables-restore (what
        # `meshproxy iptables` runs): loaded from the image's own files, with
        # the extensions Istio's rules use (owner, REDIRECT), in a network
        # namespace of the test's own so nothing on the host is touched
        rules = ("*nat\n:ISTIO_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\n"
                 "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
                 "-A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n")
        # found by name, as `meshproxy iptables` runs it: the image's own PATH
        config = json.loads(buildah("inspect", "--type", "image", "meshproxy:%s" % TAG))["OCIv1"]["config"]
        self.assertIn("PATH=/usr/local/bin:/usr/sbin:/usr/bin", config["Env"])
        self.assertEqual(config["Entrypoint"], ["/usr/local/bin/meshproxy"])
        self.assertEqual(config["User"], "1337:1337")
        name = buildah("from", "--pull=never", "--quiet", "meshproxy:%s" % TAG)
        try:
            root = buildah("mount", name)
            for variant in ("", "-legacy"):
                script = ("chroot %s /usr/sbin/iptables%s-restore --noflush && "
                          "chroot %s /usr/sbin/iptables%s-save -t nat" % (root, variant, root, variant))
                r = subprocess.run(["unshare", "--net", "sh", "-c", script], input=rules,
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN", r.stdout)
                self.assertIn("-A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001", r.stdout)
        finally:
            subprocess.run(["buildah", "umount", name], capture_output=True)
            subprocess.run(["buildah", "rm", name], capture_output=True)


    def test_4_saved_archives_import_by_name(self):
        # `make image-save`'s OCI archives, imported as `kind load
        # image-archive` and `ctr images import` do, into a containerd of the
        # test's own (its own root, state and socket): each image is there
        # under both of its full names, the ones the kubelet looks up for
        # deploy/'s `image: meshd:latest` and `image: meshproxy:latest`
        r = subprocess.run(["sh", "scripts/image.sh", "save"], cwd=ROOT, capture_output=True, text=True,
                           env=dict(os.environ, TAG=TAG), timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        d = tempfile.mkdtemp(prefix="image-it-containerd-")
        sock = os.path.join(d, "containerd.sock")
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n'
                    % (d, d, sock))
        log = open(os.path.join(d, "containerd.log"), "w")
        proc = subprocess.Popen(["containerd", "--config", os.path.join(d, "config.toml")],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def up():
                if proc.poll() is not None:
                    raise AssertionError("containerd exited %s" % proc.returncode)
                return subprocess.run(["ctr", "--address", sock, "version"], capture_output=True).returncode == 0
            wait_for(up, timeout=60, what="containerd")
            for name in ("meshd", "meshproxy"):
                archive = os.path.join(ROOT, "build", "image", "%s-%s.oci.tar" % (name, TAG))
                r = subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "import",
                                    "--all-platforms", "--no-unpack", archive],
                                   capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
            r = subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "ls", "-q"],
                               capture_output=True, text=True, timeout=60)
            names = set(r.stdout.split())
            for name in ("meshd", "meshproxy"):
                for t in (TAG, "latest"):
                    self.assertIn("docker.io/library/%s:%s" % (name, t), names)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
