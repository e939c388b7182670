package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"

	"github.com/sluicehq/sluice/internal/plot"
)

// plotRamp draws the ramp as three panels sharing the time axis: pods
// (replicas, Ready, the summed signal, the HPA's desired count and what the
// load needs), lag, and throughput against the producer's rate.
func plotRamp(w io.Writer, title string, r *Ramp) error {
	const (
		width, left, right = 900, 70, 160
		panelH, gap, top   = 170, 46, 50
		font               = `font-family="DejaVu Sans, Helvetica, Arial, sans-serif"`
	)
	type series struct {
		name, color, dash string
		v                 func(Sample) float64
	}
	panels := []struct {
		title string
		s     []series
	}{
		{"pods", []series{
			{"replicas", "#1f77b4", "", func(s Sample) float64 { return float64(s.Replicas) }},
			{"Ready", "#2ca02c", "4 3", func(s Sample) float64 { return float64(s.Ready) }},
			{"sum of desired_replicas", "#d62728", "", func(s Sample) float64 { return s.Desired }},
			{"HPA desired", "#9467bd", "2 2", func(s Sample) float64 { return float64(s.HPADesired) }},
			{"load / pod capacity", "#7f7f7f", "6 4", func(s Sample) float64 { return float64(s.Rate) / r.PodCapacity }},
		}},
		{"lag (records)", []series{
			{"lag", "#ff7f0e", "", func(s Sample) float64 { return math.Max(0, float64(s.Lag)) }},
		}},
		{"records/s", []series{
			{"delivered", "#1f77b4", "", func(s Sample) float64 { return s.Throughput }},
			{"produced (rate)", "#7f7f7f", "6 4", func(s Sample) float64 { return float64(s.Rate) }},
		}},
	}
	height := top + len(panels)*(panelH+gap) + 10
	plotW := float64(width - left - right)
	tMax := 1.0
	for _, s := range r.Samples {
		tMax = math.Max(tMax, s.T)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="16" y="28" font-size="17" font-weight="bold" %s>%s</text>`+"\n", font, html.EscapeString(title))
	for i, p := range panels {
		y0 := float64(top + i*(panelH+gap))
		yMax := 1.0
		for _, s := range r.Samples {
			for _, se := range p.s {
				yMax = math.Max(yMax, se.v(s))
			}
		}
		yMax = plot.NiceCeil(yMax * 1.05)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-size="13" font-weight="bold" %s>%s</text>`+"\n", left, y0-6, font, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#bbb"/>`+"\n", left, y0, plotW, panelH)
		for k := 0; k <= 4; k++ {
			v := yMax * float64(k) / 4
			y := y0 + panelH - float64(panelH)*float64(k)/4
			fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, float64(left)+plotW, y, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#555" %s>%s</text>`+"\n", left-4, y+3, font, trimFloat(v))
		}
		for k := 0; k <= 6; k++ {
			t := tMax * float64(k) / 6
			x := float64(left) + plotW*float64(k)/6
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10" text-anchor="middle" fill="#555" %s>%.0fs</text>`+"\n", x, y0+panelH+13, font, t)
		}
		for j, se := range p.s {
			var pts []string
			for _, s := range r.Samples {
				x := float64(left) + plotW*s.T/tMax
				y := y0 + panelH - float64(panelH)*se.v(s)/yMax
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			}
			dash := ""
			if se.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, se.dash)
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", se.color, dash, strings.Join(pts, " "))
			ly := y0 + 14 + float64(j)*16
			lx := float64(left) + plotW + 10
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, lx+18, ly-4, ly-4, se.color, dash)
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="10" %s>%s</text>`+"\n", lx+22, ly, font, html.EscapeString(se.name))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
