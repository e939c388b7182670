package e2e

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// SVG draws the results as one chart: per scenario, a grey bar for the
// duplicate bound and a blue one for the duplicates measured (on the same
// scale, relative to the bound), with produced, lost and the verdict as
// text. Scenarios whose bound is zero duplicates show only the text.
func SVG(w io.Writer, title string, rs []Result) error {
	const (
		width   = 900
		rowH    = 34
		top     = 56
		labelW  = 330
		barX    = labelW + 10
		barW    = 300
		textX   = barX + barW + 14
		fontFam = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
	)
	height := top + rowH*len(rs) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="16" y="28" font-size="18" font-weight="bold" %s>%s</text>`+"\n", fontFam, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="48" font-size="12" fill="#555" %s>duplicates (blue) against the bound (grey)</text>`+"\n", barX, fontFam)
	fmt.Fprintf(&b, `<text x="%d" y="48" font-size="12" fill="#555" %s>produced · lost · result</text>`+"\n", textX, fontFam)
	for i, r := range rs {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="16" y="%d" font-size="13" %s>%s</text>`+"\n", y+20, fontFam,
			html.EscapeString(fmt.Sprintf("%d  %s", r.ID, r.Name)))
		if r.Skipped != "" || r.Check == nil {
			msg := "skipped: " + r.Skipped
			if r.Skipped == "" {
				msg = "error"
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#777" %s>%s</text>`+"\n", barX, y+20, fontFam, html.EscapeString(msg))
			continue
		}
		c := r.Check
		bound := boundOf(r)
		if bound > 0 {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="18" fill="#dddddd"/>`+"\n", barX, y+6, barW)
			dw := int(float64(barW) * min(1, float64(c.Duplicates)/float64(bound)))
			if c.Duplicates > 0 && dw == 0 {
				dw = 1
			}
			color := "#2b6cb0"
			if c.Duplicates > bound {
				color = "#c53030"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="18" fill="%s"/>`+"\n", barX, y+6, dw, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" %s>%d / %d</text>`+"\n", barX+barW-4, y+19, fontFam, c.Duplicates, bound)
		} else {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" %s>%d duplicates (bound 0)</text>`+"\n", barX, y+20, fontFam, c.Duplicates)
		}
		verdict, color := "ok", "#276749"
		if !r.Pass {
			verdict, color = "FAIL", "#c53030"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" %s>%d · lost %d · <tspan fill="%s" font-weight="bold">%s</tspan></text>`+"\n",
			textX, y+20, fontFam, c.Acked, c.Lost+c.Phantom, color, verdict)
	}
	fmt.Fprintf(&b, "</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// boundOf is the duplicate bound a result was held to (0: none allowed).
func boundOf(r Result) int {
	var n, k int
	if _, err := fmt.Sscanf(afterDup(r.Bound), "%dx%d", &k, &n); err == nil {
		return k * n
	}
	if _, err := fmt.Sscanf(afterDup(r.Bound), "%d", &n); err == nil {
		return n
	}
	return 0
}

func afterDup(bound string) string {
	_, rest, ok := strings.Cut(bound, "dup<=")
	if !ok {
		return ""
	}
	return rest
}
