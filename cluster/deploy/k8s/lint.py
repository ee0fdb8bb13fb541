#!/usr/bin/env python3
"""What the Kubernetes schemas cannot see in cluster/deploy/k8s: the manifests' references
to each other and the choices the bootstrap depends on. Run by check.sh after the schema
check; exits 1 with one line per problem. Needs PyYAML (a dependency of
kubernetes-validate, cluster/deploy/requirements.txt)."""

import pathlib
import re
import sys

import yaml

# The manifests' directory: this script's own, or the one given (check.sh plants bugs in a
# copy to show that the lint catches them).
HERE = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
GRPC_PORT = 7001


def load():
    resources = {}
    for path in sorted(HERE.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                resources[(document["kind"], document["metadata"]["name"])] = document
    return resources


def main():
    resources = load()
    problems = []

    def need(condition, message):
        if not condition:
            problems.append(message)

    def get(kind, name):
        resource = resources.get((kind, name))
        need(resource is not None, f"no {kind} {name}")
        return resource or {}

    nodes = get("StatefulSet", "martelo-node")
    peers = get("Service", "martelo-node-peers")
    gateway = get("Deployment", "martelo-gateway")
    job = get("Job", "martelo-cluster-init")
    spec = nodes.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    replicas = spec.get("replicas")

    # Identity and bootstrap.
    need(spec.get("serviceName") == "martelo-node-peers",
         "the StatefulSet's serviceName must be the headless peer Service")
    need(peers.get("spec", {}).get("clusterIP") == "None", "the peer Service must be headless")
    need(peers.get("spec", {}).get("publishNotReadyAddresses") is True,
         "the peer Service must publish not-ready pods: nodes are not ready before init")
    need(spec.get("podManagementPolicy") == "Parallel",
         "podManagementPolicy must be Parallel: OrderedReady waits for a ready pod 0, "
         "which needs init, which needs every pod")
    (node,) = [c for c in pod.get("containers", []) if c["name"] == "node"] or [{}]
    env = {item["name"]: item.get("value") for item in node.get("env", [])}
    script = " ".join(node.get("args", []))
    need("MARTELO_NODE_ID=$((ordinal + 1))" in script,
         "the node id must be derived from the pod ordinal (+1: id 0 is reserved)")
    need("exec /usr/local/bin/martelo node" in script, "the wrapper must exec the node")
    peer_list = [item for item in (env.get("MARTELO_PEERS") or "").split(",") if item]
    need(len(peer_list) == replicas,
         f"MARTELO_PEERS names {len(peer_list)} nodes, the StatefulSet runs {replicas}")
    for ordinal, item in enumerate(peer_list):
        expected = (f"{ordinal + 1}=martelo-node-{ordinal}.martelo-node-peers."
                    f"$(POD_NAMESPACE).svc:{GRPC_PORT}")
        need(item == expected, f"peer {item!r} should be {expected!r}")
    need(env.get("MARTELO_ADVERTISE") ==
         f"$(POD_NAME).martelo-node-peers.$(POD_NAMESPACE).svc:{GRPC_PORT}",
         "MARTELO_ADVERTISE must be the pod's stable DNS name")
    node_toml = get("ConfigMap", "martelo-node").get("data", {}).get("node.toml", "")
    need(f'listen = "0.0.0.0:{GRPC_PORT}"' in node_toml, "node.toml must listen on the gRPC port")
    need('data_dir = "/var/lib/martelo"' in node_toml, "node.toml's data_dir must be the volume")
    mounts = {m["name"]: m["mountPath"] for m in node.get("volumeMounts", [])}
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
    need(mounts.get("data") == "/var/lib/martelo" and "data" in claims,
         "the data volume must come from volumeClaimTemplates and hold /var/lib/martelo")

    # Probes: the node's gRPC health service (cluster/src/node/health.rs).
    readiness = node.get("readinessProbe", {}).get("grpc", {})
    need(readiness == {"port": GRPC_PORT, "service": "ready"},
         "readiness must be the gRPC health service `ready` on the node's port")
    for probe in ("livenessProbe", "startupProbe"):
        need(node.get(probe, {}).get("grpc") == {"port": GRPC_PORT},
             f"{probe} must be the gRPC health service's server status (service \"\")")

    # Selectors select what they mean to.
    def selects(selector, what):
        match = selector.get("matchLabels", selector)
        need(match and all(labels.get(k) == v for k, v in match.items()),
             f"{what}'s selector {match} does not select the node pods")

    selects(spec.get("selector", {}), "the StatefulSet")
    selects(peers.get("spec", {}).get("selector", {}), "the peer Service")
    budget = get("PodDisruptionBudget", "martelo-node").get("spec", {})
    selects(budget.get("selector", {}), "the node PodDisruptionBudget")
    need(budget.get("maxUnavailable") == 1, "the node budget must allow one node down")
    selects(get("NetworkPolicy", "martelo-node").get("spec", {}).get("podSelector", {}),
            "the NetworkPolicy")
    gateway_labels = gateway.get("spec", {}).get("template", {}).get("metadata", {})
    gateway_labels = gateway_labels.get("labels", {})
    for kind, name, path in (("Service", "martelo-gateway", ("selector",)),
                             ("PodDisruptionBudget", "martelo-gateway",
                              ("selector", "matchLabels")),
                             ("Deployment", "martelo-gateway", ("selector", "matchLabels"))):
        selector = get(kind, name).get("spec", {})
        for key in path:
            selector = selector.get(key, {})
        need(selector and all(gateway_labels.get(k) == v for k, v in selector.items()),
             f"{kind} {name}'s selector does not select the gateway pods")

    # Every pod runs as non-root with a read-only root filesystem, and every container has
    # resource requests; every martelo image is the same.
    images = set()
    for kind, name in (("StatefulSet", "martelo-node"), ("Deployment", "martelo-gateway"),
                       ("Job", "martelo-cluster-init")):
        pod_spec = get(kind, name).get("spec", {}).get("template", {}).get("spec", {})
        need(pod_spec.get("securityContext", {}).get("runAsNonRoot") is True,
             f"{kind} {name} must run as non-root")
        for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
            where = f"{kind} {name}, container {container['name']}"
            images.add(container.get("image"))
            context = container.get("securityContext", {})
            need(context.get("readOnlyRootFilesystem") is True,
                 f"{where}: the root filesystem must be read-only")
            need(context.get("allowPrivilegeEscalation") is False,
                 f"{where}: privilege escalation must be off")
            need("requests" in container.get("resources", {}), f"{where}: no resource requests")
    need(len(images) == 1, f"the manifests name several images: {sorted(map(str, images))}")

    # The init Job is idempotent and aims at node 1.
    (init,) = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    need("--if-not-initialized" in init.get("args", []),
         "the init Job must pass --if-not-initialized, so a retry succeeds")
    init_env = {item["name"]: item.get("value") for item in init.get("env", [])}
    need(bool(peer_list) and init_env.get("MARTELO_ADDR") == peer_list[0].split("=", 1)[1],
         "the init Job must contact node 1 at its peer address")

    # The gateway's key file: from the Secret, through the init container's 0600 copy.
    gateway_toml = get("ConfigMap", "martelo-gateway").get("data", {}).get("gateway.toml", "")
    key_file = re.search(r'key_file = "([^"]+)"', gateway_toml)
    need(key_file is not None, "gateway.toml must name the key file")
    gateway_pod = gateway.get("spec", {}).get("template", {}).get("spec", {})
    copy = " ".join(" ".join(c.get("args", [])) for c in gateway_pod.get("initContainers", []))
    need(key_file is not None and "install -m 0600" in copy and key_file.group(1) in copy,
         "an init container must copy the key Secret to gateway.toml's key_file, mode 0600")
    gateway_env = gateway_pod.get("containers", [{}])[0].get("env", [])
    seeds = [item for item in gateway_env if item["name"] == "MARTELO_CLUSTER"]
    need(seeds and seeds[0]["value"].split(",") == [p.split("=", 1)[1] for p in peer_list],
         "the gateway's MARTELO_CLUSTER must list every node's peer address")

    for problem in problems:
        print(f"lint: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"lint: {len(resources)} resources, cross-references and bootstrap choices hold")


if __name__ == "__main__":
    main()
