// Command azure-wi-webhook is the sandbox's entry point for the azure-workload-identity mutating
// webhook v1.6.0. It is upstream's cmd/webhook/main.go with one change: upstream always serves the
// webhook on 0.0.0.0:9443 (controller-runtime's defaults, no flag), which this machine forbids and
// which allows only one webhook per host. Here --webhook-host (default 127.0.0.1) and --webhook-port
// choose the address, and every listener (webhook, health, metrics) must be on a loopback address.
//
// Everything else is upstream's: the same flags and defaults otherwise, the same manager set-up,
// cert rotation, probes and the pod mutator from github.com/Azure/azure-workload-identity/pkg/webhook
// (the admission logic is not copied or changed).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"monis.app/mlog"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/manager/signals"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/Azure/azure-workload-identity/pkg/metrics"
	"github.com/Azure/azure-workload-identity/pkg/util"
	"github.com/Azure/azure-workload-identity/pkg/version"
	wh "github.com/Azure/azure-workload-identity/pkg/webhook"
)

var webhooks = []rotator.WebhookInfo{
	{
		Name: "azure-wi-webhook-mutating-webhook-configuration",
		Type: rotator.Mutating,
	},
}

const (
	secretName     = "azure-wi-webhook-server-cert" // #nosec
	serviceName    = "azure-wi-webhook-webhook-service"
	caName         = "azure-workload-identity-ca"
	caOrganization = "azure-workload-identity"
)

var (
	audience            string
	webhookHost         string
	webhookPort         int
	webhookCertDir      string
	tlsMinVersion       string
	healthAddr          string
	metricsAddr         string
	disableCertRotation bool
	metricsBackend      string
	logLevel            string
	versionInfo         bool

	// DNSName is <service name>.<namespace>.svc
	dnsName = fmt.Sprintf("%s.%s.svc", serviceName, util.GetNamespace())
	scheme  = runtime.NewScheme()

	entryLog = mlog.New().WithName("entrypoint")

	customTokenEndpointAnnotationSuffix string
	customTokenEndpointAudience         string
)

func init() {
	_ = clientgoscheme.AddToScheme(scheme)
}

func main() {
	if err := mainErr(); err != nil {
		mlog.Fatal(err)
	}
}

// loopbackHost accepts a literal loopback IP (127.0.0.0/8, ::1) or "localhost"; an empty host
// (all interfaces) or any other address is refused.
func loopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (this build listens on loopback only)", host)
}

// checkBindAddress validates a controller-runtime bind address: "0" (disabled) or host:port on loopback.
func checkBindAddress(flagName, addr string) error {
	if addr == "0" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s=%q: %w", flagName, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--%s=%q: invalid port", flagName, addr)
	}
	if err := loopbackHost(host); err != nil {
		return fmt.Errorf("--%s: %w", flagName, err)
	}
	return nil
}

func mainErr() error {
	defer mlog.Setup()()

	flag.StringVar(&audience, "audience", "", "Audience for service account token")
	flag.StringVar(&webhookHost, "webhook-host", "127.0.0.1", "Loopback address the webhook server binds to (sandbox build: loopback only)")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port the webhook server binds to")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "/certs", "Webhook certificates dir to use. Defaults to /certs")
	flag.BoolVar(&disableCertRotation, "disable-cert-rotation", false, "disable automatic generation and rotation of webhook TLS certificates/keys")
	flag.StringVar(&tlsMinVersion, "tls-min-version", "1.3", "Minimum TLS version")
	flag.StringVar(&healthAddr, "health-addr", "127.0.0.1:9440", "The loopback address the health endpoint binds to (\"0\" disables it)")
	flag.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:8095", "The loopback address the metrics endpoint binds to (\"0\" disables it)")
	flag.StringVar(&metricsBackend, "metrics-backend", "prometheus", "Backend used for metrics")
	flag.StringVar(&logLevel, "log-level", "",
		"In order of increasing verbosity: unset (empty string), info, debug, trace and all.")
	flag.BoolVar(&versionInfo, "version", false, "Print version information and exit")

	flag.StringVar(&customTokenEndpointAnnotationSuffix, "custom-token-endpoint-annotation-suffix", "",
		"Suffix to append to 'azure.workload.identity/use-' when defining a custom token endpoint annotation. "+
			"When empty, custom token endpoint injection is disabled.")

	flag.StringVar(&customTokenEndpointAudience, "custom-token-endpoint-audience", "",
		"Audience to use when configuring service account tokens for custom token endpoints. "+
			"When empty, custom token endpoint injection is disabled.")

	flag.Parse()

	if versionInfo {
		return version.PrintVersionToStdout()
	}

	if err := loopbackHost(webhookHost); err != nil {
		return fmt.Errorf("--webhook-host: %w", err)
	}
	if webhookPort < 1 || webhookPort > 65535 {
		return fmt.Errorf("--webhook-port=%d: must be 1-65535", webhookPort)
	}
	if err := checkBindAddress("health-addr", healthAddr); err != nil {
		return err
	}
	if err := checkBindAddress("metrics-addr", metricsAddr); err != nil {
		return err
	}

	ctx := signals.SetupSignalHandler()

	if err := mlog.ValidateAndSetLogLevelAndFormatGlobally(ctx, mlog.LogSpec{
		Level:  mlog.LogLevel(logLevel),
		Format: mlog.FormatJSON,
	}); err != nil {
		return fmt.Errorf("invalid --log-level set: %w", err)
	}

	// nolint:staticcheck
	// controller-runtime forces use to use the deprecated logr.Logger returned by mlog.Logr here
	log.SetLogger(mlog.Logr())
	config := ctrl.GetConfigOrDie()
	config.UserAgent = version.GetUserAgent("webhook")

	// initialize metrics exporter before creating measurements
	entryLog.Info("initializing metrics backend", "backend", metricsBackend)
	if err := metrics.InitMetricsExporter(metricsBackend); err != nil {
		return fmt.Errorf("entrypoint: failed to initialize metrics exporter: %w", err)
	}

	// log the user agent as it makes it easier to debug issues
	entryLog.Info("setting up manager", "userAgent", config.UserAgent)

	tlsVersion, err := parseTLSVersion(tlsMinVersion)
	if err != nil {
		return fmt.Errorf("entrypoint: unable to parse TLS version: %w", err)
	}

	serverOpts := webhook.Options{
		Host:    webhookHost,
		Port:    webhookPort,
		CertDir: webhookCertDir,
		TLSOpts: []func(c *tls.Config){func(c *tls.Config) { c.MinVersion = tlsVersion }},
	}
	entryLog.Info("webhook server address", "host", webhookHost, "port", webhookPort)
	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                 scheme,
		LeaderElection:         false,
		HealthProbeBindAddress: healthAddr,
		Metrics: metricsserver.Options{
			BindAddress: metricsAddr,
		},
		WebhookServer:  webhook.NewServer(serverOpts),
		MapperProvider: apiutil.NewDynamicRESTMapper,
	})
	if err != nil {
		return fmt.Errorf("entrypoint: unable to set up controller manager: %w", err)
	}

	// Make sure certs are generated and valid if cert rotation is enabled.
	setupFinished := make(chan struct{})
	if !disableCertRotation {
		entryLog.Info("setting up cert rotation")
		if err := rotator.AddRotator(mgr, &rotator.CertRotator{
			SecretKey: types.NamespacedName{
				Namespace: util.GetNamespace(),
				Name:      secretName,
			},
			CertDir:        webhookCertDir,
			CAName:         caName,
			CAOrganization: caOrganization,
			DNSName:        dnsName,
			IsReady:        setupFinished,
			Webhooks:       webhooks,
		}); err != nil {
			return fmt.Errorf("entrypoint: unable to set up cert rotation: %w", err)
		}
	} else {
		close(setupFinished)
	}

	setupProbeEndpoints(mgr, setupFinished)
	go setupWebhook(mgr, setupFinished)

	entryLog.Info("starting manager")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("entrypoint: unable to run manager: %w", err)
	}

	return nil
}

func setupWebhook(mgr manager.Manager, setupFinished chan struct{}) {
	// Block until the setup (certificate generation) finishes.
	<-setupFinished

	hookServer := mgr.GetWebhookServer()

	// setup webhooks
	entryLog.Info("registering webhook to the webhook server")
	podMutator, err := wh.NewPodMutator(mgr.GetClient(), mgr.GetAPIReader(), audience, mgr.GetScheme(), mgr.GetConfig(), customTokenEndpointAnnotationSuffix, customTokenEndpointAudience)
	if err != nil {
		panic(fmt.Errorf("unable to set up pod mutator: %w", err))
	}
	hookServer.Register("/mutate-v1-pod", &webhook.Admission{Handler: podMutator})
}

func setupProbeEndpoints(mgr ctrl.Manager, setupFinished chan struct{}) {
	// Block readiness on the mutating webhook being registered.
	// We can't use mgr.GetWebhookServer().StartedChecker() yet,
	// because that starts the webhook. But we also can't call AddReadyzCheck
	// after Manager.Start. So we need a custom ready check that delegates to
	// the real ready check after the cert has been injected and validator started.
	checker := func(req *http.Request) error {
		select {
		case <-setupFinished:
			return mgr.GetWebhookServer().StartedChecker()(req)
		default:
			return fmt.Errorf("certs are not ready yet")
		}
	}

	if err := mgr.AddHealthzCheck("healthz", checker); err != nil {
		panic(fmt.Errorf("unable to add healthz check: %w", err))
	}
	if err := mgr.AddReadyzCheck("readyz", checker); err != nil {
		panic(fmt.Errorf("unable to add readyz check: %w", err))
	}
	entryLog.Info("added healthz and readyz check")
}

func parseTLSVersion(tlsVersion string) (uint16, error) {
	switch tlsVersion {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	default:
		return 0, fmt.Errorf("invalid TLS version. Must be one of: 1.0, 1.1, 1.2, 1.3")
	}
}
