package sim

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/sluicehq/sluice/internal/plot"
)

// colours per controller, and for the optimum and the oracle.
var colours = map[string]string{
	"adaptive":        "#1f77b4",
	"fixed-min":       "#8c8c8c",
	"fixed-max":       "#ff7f0e",
	"depth-threshold": "#d62728",
}

const (
	svgW     = 960
	panelH   = 170
	padL     = 70
	padR     = 170
	padTop   = 68
	panelGap = 40
)

// panel is one plot in the figure.
type panel struct {
	title string
	y     func(Point) float64 // the value plotted
	scale axis
}

// axis maps values to [0, 1].
type axis struct {
	log   bool // log scale of (v + off)
	off   float64
	lo    float64
	hi    float64
	ticks []float64
	label func(float64) string
}

func (a axis) pos(v float64) float64 {
	if a.log {
		l := math.Log10(math.Max(v+a.off, a.lo+a.off))
		return (l - math.Log10(a.lo+a.off)) / (math.Log10(a.hi+a.off) - math.Log10(a.lo+a.off))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// WriteSVG plots workers, queue depth and throughput over time for every
// controller in c, with the Little's-law optimum and the oracle's throughput
// dashed. It depends on nothing but the standard library.
func WriteSVG(w io.Writer, c Comparison, maxWorkers int) error {
	if len(c.Results) == 0 || len(c.Results[0].Points) == 0 {
		return fmt.Errorf("sim: nothing to plot for %s", c.Scenario.Name)
	}
	dur := c.Scenario.Duration.Seconds()
	maxDone := 0.0
	for _, r := range c.Results {
		for _, p := range r.Points {
			maxDone = math.Max(maxDone, math.Max(p.Done, p.Oracle))
		}
	}
	maxDone = plot.NiceCeil(maxDone)
	workerTicks := []float64{}
	for v := 1.0; v <= float64(maxWorkers); v *= 4 {
		workerTicks = append(workerTicks, v)
	}
	panels := []panel{
		{title: "workers (log scale); dashed: Little's-law optimum", y: func(p Point) float64 { return float64(p.Workers) },
			scale: axis{log: true, lo: 1, hi: float64(maxWorkers), ticks: workerTicks, label: intLabel}},
		{title: "records waiting in the window (log scale)", y: func(p Point) float64 { return float64(p.Depth) },
			scale: axis{log: true, off: 1, lo: 0, hi: 1e5, ticks: []float64{0, 10, 100, 1000, 10000, 100000}, label: intLabel}},
		{title: "throughput, records/s; dashed: best achievable (oracle)", y: func(p Point) float64 { return p.Done },
			scale: axis{lo: 0, hi: maxDone, ticks: []float64{0, maxDone / 4, maxDone / 2, 3 * maxDone / 4, maxDone}, label: intLabel}},
	}
	height := padTop + len(panels)*(panelH+panelGap) + 20
	plotW := float64(svgW - padL - padR)

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, DejaVu Sans, sans-serif" font-size="11">`+"\n",
		svgW, height, svgW, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", padL, esc("autoscale scenario: "+c.Scenario.Name))
	fmt.Fprintf(&b, `<text x="%d" y="36" fill="#444">%s</text>`+"\n", padL, esc(c.Scenario.Title))

	x := func(t float64) float64 { return padL + plotW*t/dur }
	for i, pn := range panels {
		top := float64(padTop + i*(panelH+panelGap))
		y := func(v float64) float64 { return top + panelH*(1-clamp01(pn.scale.pos(v))) }
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#222">%s</text>`+"\n", padL, top-6, esc(pn.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="none" stroke="#bbb"/>`+"\n", padL, top, plotW, panelH)
		for _, tv := range pn.scale.ticks {
			ty := y(tv)
			fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", padL, padL+plotW, ty, ty)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#666">%s</text>`+"\n", padL-6, ty+4, pn.scale.label(tv))
		}
		for t := 0.0; t <= dur; t += 30 {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x(t), x(t), top, top+panelH)
			if i == len(panels)-1 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#666">%.0f s</text>`+"\n", x(t), top+panelH+14, t)
			}
		}
		if ev := c.Scenario.Event.Seconds(); ev > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="2,3"/>`+"\n", x(ev), x(ev), top, top+panelH)
		}
		// the reference: optimum workers, or the oracle's throughput
		ref := c.Results[0].Points
		switch i {
		case 0:
			writeLine(&b, ref, x, y, func(p Point) float64 { return math.Max(1, p.Optimum) }, "#2ca02c", 1.5, "6,4")
		case 2:
			writeLine(&b, ref, x, y, func(p Point) float64 { return p.Oracle }, "#2ca02c", 1.5, "6,4")
		}
		// adaptive last so it is on top
		for j := len(c.Results) - 1; j >= 0; j-- {
			r := c.Results[j]
			width := 1.2
			if r.Controller == "adaptive" {
				width = 2.2
			}
			writeLine(&b, r.Points, x, y, pn.y, colour(r.Controller), width, "")
		}
	}
	// legend
	lx := float64(svgW - padR + 16)
	ly := float64(padTop + 10)
	for i, r := range c.Results {
		yy := ly + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"/>`+"\n", lx, lx+22, yy, yy, colour(r.Controller))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+28, yy+4, esc(r.Controller))
	}
	yy := ly + float64(len(c.Results))*18
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="6,4"/>`+"\n", lx, lx+22, yy, yy)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">optimum / oracle</text>`+"\n", lx+28, yy+4)
	if c.Scenario.Event > 0 {
		yy += 18
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="2,3"/>`+"\n", lx, lx+22, yy, yy)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">event</text>`+"\n", lx+28, yy+4)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func writeLine(b *bytes.Buffer, pts []Point, x func(float64) float64, y func(float64) float64, v func(Point) float64, colour string, width float64, dash string) {
	var sb strings.Builder
	for i, p := range pts {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%.1f,%.1f", x(p.T), y(v(p)))
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="%.1f"%s stroke-linejoin="round" points="%s"/>`+"\n",
		colour, width, d, sb.String())
}

func colour(name string) string {
	if c, ok := colours[name]; ok {
		return c
	}
	return "#9467bd"
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }

func intLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", math.Round(v))
	}
}
