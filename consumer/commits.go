package consumer

// commitPoints takes the done prefix of each of the given partitions (all
// when parts is nil) that moved since the last commit. The caller must
// report each point back with committed or uncommitted.
func (p *pipeline) commitPoints(parts []*partition) []commitPoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []commitPoint
	take := func(part *partition) {
		if part.gone || part.relRecords == 0 {
			return
		}
		out = append(out, commitPoint{
			part: part, offset: part.doneOffset, epoch: part.doneEpoch,
			records: part.relRecords, bytes: part.relBytes,
		})
		p.relRecs -= part.relRecords
		part.relRecords, part.relBytes = 0, 0
	}
	if parts == nil {
		for _, part := range p.parts {
			take(part)
		}
	} else {
		for _, part := range parts {
			take(part)
		}
	}
	return out
}

// committed records that the broker stored cp and gives its records' places
// in the window back.
func (p *pipeline) committed(cps []commitPoint) {
	var recs, bytes int64
	p.mu.Lock()
	for _, cp := range cps {
		part := cp.part
		if part.gone {
			continue // remove already released the partition's whole share
		}
		part.committed = max(part.committed, cp.offset)
		part.heldRecords -= cp.records
		part.heldBytes -= cp.bytes
		recs += cp.records
		bytes += cp.bytes
	}
	p.mu.Unlock()
	p.win.Release(int(recs), bytes)
}

// uncommitted puts points whose commit failed back, to be retried with the
// next commit. Their records keep their places in the window meanwhile.
func (p *pipeline) uncommitted(cps []commitPoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cp := range cps {
		if cp.part.gone {
			continue
		}
		cp.part.relRecords += cp.records
		cp.part.relBytes += cp.bytes
		p.relRecs += cp.records
	}
}

// kick asks the committer to commit now.
func (p *pipeline) kick() {
	select {
	case p.kickCommit <- struct{}{}:
	default:
	}
}
