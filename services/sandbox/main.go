// Command sandbox runs the project's BigCommerce and TropShip simulators and
// sends BigCommerce webhooks by hand. Subcommands:
//
//	sandbox serve   run both simulators (see sandbox serve -h)
//	sandbox send    send one signed webhook event, N times, in parallel
//	sandbox demo    run the end-to-end demonstration
//	sandbox load    drive the real gateway with many orders and report the figures
//
// Settings come from flags, whose defaults come from the environment
// variables the services use (BIGCOMMERCE_STORE_HASH, TROPSHIP_CLIENT_ID, ...),
// so one environment configures the whole local stack.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// command is one subcommand. Its run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands lists the subcommands; each lives in its own file.
var commands = map[string]command{
	"serve": {"run the BigCommerce and TropShip simulators", runServe},
	"send":  {"send one signed BigCommerce webhook event, N times, in parallel", runSend},
	"demo":  {"run the end-to-end demonstration", runDemo},
	"load":  {"drive the gateway with many orders and duplicates, and measure", runLoad},
}

// errUsage reports a command line that could not be understood; the usage
// text has been printed already.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sandbox: unknown command %q\n\n", args[0])
		usage(stderr)
		return errUsage
	}
	err := cmd.run(ctx, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h printed the command's flags
	}
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sandbox <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `run "sandbox <command> -h" for a command's flags`)
}

// parseFlags parses a subcommand's flags; errors (and -h) come back as
// errors, with the flag package's message already printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envInt reads an integer variable; a malformed value is reported when the
// flags are validated, naming the variable.
func envInt(name string, def int) (int, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q is not a number", name, v)
	}
	return n, nil
}
